#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the sample concept on the offline backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/s9 generate data/s7_scene_prompts/sample_batch/watchmaker_journey/watchmaker_journey_scene_prompts.json \
    --frames data/s8_first_frames/sample_batch/watchmaker_journey
