"""The fake Replicate server, driven by the REAL `replicate` client over real HTTP(S).

The point of the fake is that code written against Replicate runs unchanged against it, so these tests
never talk to the server with hand-made requests when the official client can make them; raw httpx is
only used for what the client hides (response headers, missing auth, /_fake introspection).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput, transform_output

from s9.fake import E005, FakeConfig, FakeReplicate
from s9.fake.cli import fake_replicate_command

LATENCY = 0.1
AUTH = {"Authorization": "Bearer test-token"}


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReplicate]:
    # One server for the module keeps renders cached and the file fast; each test resets the config.
    with FakeReplicate(config=FakeConfig(latency=LATENCY)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        srv.config = FakeConfig(latency=LATENCY)


@pytest.fixture
def client(server: FakeReplicate) -> replicate.Client:
    c = replicate.Client(api_token="test-token", base_url=server.base_url)
    c.poll_interval = 0.05  # the default 0.5 s (REPLICATE_POLL_INTERVAL) would dominate the runtime
    return c


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "first_frame.jpg"
    Image.new("RGB", (640, 360), (30, 160, 220)).save(path, quality=90)
    return path


def probe(data: bytes, tmp_path: Path, name: str = "clip.mp4") -> dict:
    """Size, duration, audio presence and decoded frame count of an MP4, via PyAV."""
    path = tmp_path / name
    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "duration": float(video.duration * video.time_base),
            "audio": bool(container.streams.audio),
            "frames": frames,
            "codec": video.codec_context.name,
        }


def record(server: FakeReplicate, prediction_id: str) -> dict:
    return next(p for p in server.predictions() if p["id"] == prediction_id)


# -- files -----------------------------------------------------------------------------------------


def test_upload_get_and_download_file(server: FakeReplicate, client: replicate.Client, jpeg: Path) -> None:
    f = client.files.create(jpeg, metadata={"scene": 1})
    assert f.name == "first_frame.jpg"
    assert f.content_type == "image/jpeg"
    assert f.size == jpeg.stat().st_size
    assert f.metadata == {"scene": 1}
    assert f.urls["get"] == f"{server.base_url}/v1/files/{f.id}"
    assert client.files.get(f.id).checksums == f.checksums
    assert f.id in [x.id for x in client.files.list()]
    r = httpx.get(f"{f.urls['get']}/download", headers=AUTH)
    assert r.status_code == 200 and r.content == jpeg.read_bytes()
    assert client.files.delete(f.id)
    with pytest.raises(ReplicateError) as err:
        client.files.get(f.id)
    assert err.value.status == 404


def test_failing_upload_then_recovery(server: FakeReplicate, client: replicate.Client, jpeg: Path) -> None:
    server.config.fail_uploads = 1
    with pytest.raises(ReplicateError) as err:
        client.files.create(jpeg)
    assert err.value.status == 500  # POST: the client does not retry
    assert client.files.create(jpeg).size == jpeg.stat().st_size


# -- predictions end to end ------------------------------------------------------------------------

CASES = [
    # model, input (beyond prompt + image), image field, expected (width, height, seconds, audio)
    ("openai/sora-2", {"seconds": 4, "aspect_ratio": "portrait"}, "input_reference", (720, 1280, 4, False)),
    ("google/veo-3-fast", {"duration": 4, "aspect_ratio": "1:1", "generate_audio": False}, "image",
     (720, 720, 4, False)),
    ("google/veo-3.1-fast", {"duration": 4, "resolution": "1080p"}, "image", (1280, 720, 4, True)),
]


@pytest.mark.parametrize(("model", "extra", "image_field", "expected"), CASES, ids=[c[0] for c in CASES])
def test_models_render_real_clips(
    server: FakeReplicate, client: replicate.Client, jpeg: Path, tmp_path: Path,
    model: str, extra: dict, image_field: str, expected: tuple[int, int, int, bool],
) -> None:
    upload = client.files.create(jpeg)
    inp = {"prompt": f"A lighthouse keeper climbs the stairs ({model})", image_field: upload.urls["get"], **extra}
    prediction = client.models.predictions.create(model=model, input=inp)
    assert prediction.status == "starting" and prediction.output is None
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert prediction.output == f"{server.base_url}/v1/outputs/{prediction.id}.mp4"
    assert isinstance(prediction.output, str)  # plain http: no FileOutput (see the https test)
    assert prediction.completed_at and prediction.metrics["predict_time"] >= 0

    r = httpx.get(prediction.output)  # like the real delivery host, outputs need no token
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert int(r.headers["content-length"]) == len(r.content)
    width, height, seconds, audio = expected
    info = probe(r.content, tmp_path)
    assert (info["width"], info["height"], info["audio"], info["codec"]) == (width, height, audio, "h264")
    assert info["duration"] == pytest.approx(seconds, abs=0.1)
    assert info["frames"] == seconds * 24

    rec = record(server, prediction.id)
    assert rec["input"] == inp  # exactly as sent, no defaults filled in
    assert rec["render"]["first_frame"] == "file"
    assert rec["status"] == "succeeded"


def test_status_goes_starting_processing_succeeded(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.latency = 0.6
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "status walk"})
    seen = [p.status]
    while p.status not in ("succeeded", "failed", "canceled"):
        time.sleep(0.05)
        p.reload()
        if p.status != seen[-1]:
            seen.append(p.status)
    assert seen == ["starting", "processing", "succeeded"]
    assert p.started_at and p.completed_at and p.started_at < p.completed_at
    assert p.logs


def test_prefer_wait_blocks_until_done(server: FakeReplicate, client: replicate.Client) -> None:
    server.reset()
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "blocking"}, wait=30)
    assert p.status == "succeeded" and p.output  # one request, no polling
    assert record(server, p.id)["prefer"] == "wait=30"
    assert server.stats()["by_route"] == {"POST /v1/models/{owner}/{name}/predictions": 1}


def test_prefer_wait_times_out_as_starting(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.latency = 20
    t0 = time.monotonic()
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "too slow"}, wait=1)
    assert 0.9 <= time.monotonic() - t0 < 10  # the 1 s wait, not the 20 s it takes (room for a busy machine)
    # Like the real API: not finished within the wait -> "starting", which replicate.run() relies on.
    assert p.status == "starting"
    p.cancel()


def test_prefer_wait_returns_as_soon_as_a_concurrent_cancel_lands(server: FakeReplicate,
                                                                 client: replicate.Client) -> None:
    server.config.latency = 30
    answer: list = []
    t0 = time.monotonic()
    held = threading.Thread(target=lambda: answer.append(client.models.predictions.create(
        model="openai/sora-2", input={"prompt": "held then canceled"}, wait=30)))
    held.start()
    deadline = time.monotonic() + 5
    while not [p for p in server.predictions() if p["input"]["prompt"] == "held then canceled"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [rec] = [p for p in server.predictions() if p["input"]["prompt"] == "held then canceled"]
    assert client.predictions.cancel(rec["id"]).status == "canceled"
    held.join(5)
    assert answer and answer[0].status == "canceled" and answer[0].id == rec["id"]
    assert time.monotonic() - t0 < 15  # answered by the cancel, not after the 30 s wait


def test_list_predictions_newest_first_with_cursor_pages(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.list_page_size = 2
    made = [client.models.predictions.create(model="google/veo-3-fast", input={"prompt": f"list {i}", "duration": 4})
            for i in range(5)]
    for p in made:
        p.cancel()  # nothing to render
    newest_first = [p.id for p in reversed(made)]
    first = client.predictions.list()
    assert [p.id for p in first] == newest_first[:2] and first.previous is None
    assert first.next.startswith(f"{server.base_url}/v1/predictions?cursor=")  # a full URL, like the real API
    second = client.predictions.list(first.next)
    assert [p.id for p in second] == newest_first[2:4]
    assert [p.id for p in client.predictions.list(second.previous)] == newest_first[:2]
    third = client.predictions.list(second.next)
    assert [p.id for p in third][:1] == newest_first[4:5]
    # Full prediction objects, as GET /v1/predictions/<id> gives them.
    top = first.results[0]
    assert (top.model, top.input, top.status) == ("google/veo-3-fast", {"prompt": "list 4", "duration": 4}, "canceled")
    assert top.created_at.endswith("Z") and top.urls["get"].endswith(f"/v1/predictions/{top.id}")
    assert httpx.get(f"{server.base_url}/v1/predictions").status_code == 401
    assert httpx.get(f"{server.base_url}/v1/predictions?cursor=bogus", headers=AUTH).status_code == 400


def test_create_then_error_creates_but_answers_502(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.create_then_error = 1
    server.reset()
    with pytest.raises(ReplicateError) as err:
        client.models.predictions.create(model="openai/sora-2", input={"prompt": "lost answer"}, wait=5)
    assert err.value.status == 502
    [made] = [p for p in client.predictions.list() if p.input == {"prompt": "lost answer"}]  # but it exists
    assert made.status in ("starting", "processing", "succeeded")
    made.cancel()
    assert server.config.create_then_error == 0  # one shot
    assert [r["status"] for r in server.requests()][:1] == [502]


def test_run_defaults_and_generated_first_frame(server: FakeReplicate, client: replicate.Client,
                                                tmp_path: Path) -> None:
    """replicate.run sends `Prefer: wait`; veo defaults are 8 s 16:9 with audio; no image is fine."""
    out = client.run("google/veo-3-fast", input={"prompt": "defaults only"})
    assert isinstance(out, str) and out.startswith(f"{server.base_url}/v1/outputs/")
    info = probe(httpx.get(out).content, tmp_path)
    assert (info["width"], info["height"], info["audio"]) == (1280, 720, True)
    assert info["duration"] == pytest.approx(8, abs=0.1)
    rec = next(p for p in server.predictions() if out.endswith(f"/{p['id']}.mp4"))
    assert rec["prefer"] == "wait"
    assert rec["render"]["first_frame"] == "generated"


def test_path_and_data_uri_inputs_are_resolved(server: FakeReplicate, client: replicate.Client, jpeg: Path) -> None:
    # The client uploads a Path itself (files.create) or inlines it with file_encoding_strategy=base64.
    a = client.models.predictions.create(model="openai/sora-2", input={"prompt": "p", "input_reference": jpeg})
    b = client.models.predictions.create(model="google/veo-3-fast", file_encoding_strategy="base64",
                                         input={"prompt": "p", "image": jpeg, "duration": 4})
    c = client.models.predictions.create(model="google/veo-3-fast",
                                         input={"prompt": "p", "image": "https://example.com/x.jpg", "duration": 4})
    assert a.input["input_reference"].startswith(f"{server.base_url}/v1/files/")
    assert b.input["image"].startswith("data:image/jpeg;base64,")
    assert [record(server, x.id)["render"]["first_frame"] for x in (a, b, c)] == ["file", "data", "generated"]
    for x in (a, b, c):
        x.cancel()


@pytest.mark.slow
def test_many_predictions_all_finish(server: FakeReplicate, client: replicate.Client) -> None:
    preds = [
        client.models.predictions.create(model="google/veo-3.1-fast",
                                         input={"prompt": f"crowd {i % 3}", "duration": 4, "generate_audio": False})
        for i in range(8)
    ]
    for p in preds:
        p.wait()
    assert {p.status for p in preds} == {"succeeded"}
    # Identical inputs share one render.
    assert len({httpx.get(p.output).content for p in preds}) == 3


def test_shared_renders_serve_one_valid_clip_per_shape(server: FakeReplicate, client: replicate.Client,
                                                      tmp_path: Path) -> None:
    server.config.shared_renders = True
    inputs = [{"prompt": f"scene {i}", "duration": 4, "generate_audio": i < 2} for i in range(3)]
    preds = [client.models.predictions.create(model="google/veo-3.1-fast", input=i) for i in inputs]
    for p in preds:
        p.wait()
    clips = [httpx.get(p.output).content for p in preds]
    assert clips[0] == clips[1] != clips[2]  # different prompts, same shape -> one clip; no audio -> another
    assert probe(clips[0], tmp_path, "a.mp4")["audio"] and not probe(clips[2], tmp_path, "b.mp4")["audio"]


# -- errors ----------------------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401(server: FakeReplicate) -> None:
    url = f"{server.base_url}/v1/models/openai/sora-2/predictions"
    r = httpx.post(url, json={"input": {"prompt": "x"}})
    assert r.status_code == 401 and r.json()["detail"] == "Unauthenticated"
    assert httpx.post(url, json={"input": {"prompt": "x"}}, headers={"Authorization": "Bearer"}).status_code == 401
    server.config.expected_token = "right"
    with pytest.raises(ReplicateError) as err:
        replicate.Client(api_token="wrong", base_url=server.base_url).files.list()
    assert err.value.status == 401
    assert replicate.Client(api_token="right", base_url=server.base_url).files.list() is not None


def test_unknown_model_is_404(client: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as err:
        client.models.predictions.create(model="acme/not-a-model", input={"prompt": "x"})
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("model", "inp", "field"),
    [
        ("google/veo-3-fast", {"prompt": "x", "duration": 5}, "duration"),
        ("google/veo-3-fast", {"prompt": "x", "duration": "8"}, "duration"),
        ("google/veo-3.1-fast", {"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio"),
        ("google/veo-3.1-fast", {"prompt": "x", "generate_audio": "yes"}, "generate_audio"),
        ("google/veo-3-fast", {"prompt": "x", "image": "not a uri"}, "image"),
        ("openai/sora-2", {"prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio"),
        ("openai/sora-2", {"prompt": "x", "seconds": 6}, "seconds"),
        ("openai/sora-2", {"prompt": "x", "duration": 4}, "duration"),  # veo's field, unknown to sora
        ("openai/sora-2", {"prompt": "x", "generate_audio": False}, "generate_audio"),
        ("google/veo-3-fast", {"duration": 4}, "prompt"),
    ],
)
def test_invalid_input_is_422_naming_the_field(client: replicate.Client, model: str, inp: dict, field: str) -> None:
    with pytest.raises(ReplicateError) as err:
        client.models.predictions.create(model=model, input=inp)
    assert err.value.status == 422
    assert field in err.value.detail
    assert err.value.title == "Input validation failed"


def test_rate_limited_create_is_429_with_retry_after(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.rate_limit_creates = 1
    server.config.retry_after = 7
    with pytest.raises(ReplicateError) as err:  # the client never retries POSTs
        client.models.predictions.create(model="openai/sora-2", input={"prompt": "x"})
    assert err.value.status == 429 and "throttled" in err.value.detail
    server.config.rate_limit_creates = 1
    r = httpx.post(f"{server.base_url}/v1/models/openai/sora-2/predictions", headers=AUTH,
                   json={"input": {"prompt": "x"}})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "x"})
    assert p.status == "starting"
    p.cancel()


def test_create_limit_answers_429_past_the_burst_until_the_rate_allows(server: FakeReplicate) -> None:
    """The account's create limit: a burst, then one create per 60/limit seconds; past it, the real API's
    429 ("resets in ~Ns") with a whole-second Retry-After. Other endpoints are not limited by it."""
    server.reset()
    made = len(server.predictions())  # the server is shared by the module's tests: count only this test's
    server.config.create_limit_per_minute = 60  # one a second
    server.config.create_burst = 3
    url = f"{server.base_url}/v1/models/openai/sora-2/predictions"
    answers = [httpx.post(url, headers=AUTH, json={"input": {"prompt": "x"}}) for _ in range(5)]
    assert [r.status_code for r in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["detail"] == "Request was throttled. Your rate limit resets in ~1s."
    assert httpx.get(f"{server.base_url}/v1/account", headers=AUTH).status_code == 200
    assert server.stats()["throttled"] == 2 and len(server.predictions()) == made + 3
    time.sleep(1.05)  # one more is allowed a second later, and only one
    assert [httpx.post(url, headers=AUTH, json={"input": {"prompt": "x"}}).status_code for _ in range(2)] == [201, 429]


def test_server_error_on_create_is_not_retried(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.server_error_creates = 1
    server.reset()
    with pytest.raises(ReplicateError) as err:
        client.models.predictions.create(model="openai/sora-2", input={"prompt": "x"})
    assert err.value.status == 503
    assert [r["status"] for r in server.requests()] == [503]


def test_503_on_get_is_retried_by_the_client(server: FakeReplicate, client: replicate.Client) -> None:
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "retry me"})
    server.reset()
    server.config.server_error_gets = 2
    p.wait()
    assert p.status == "succeeded"
    statuses = [r["status"] for r in server.requests() if r["route"] == "/v1/predictions/{id}"]
    assert statuses[:3] == [503, 503, 200]
    assert server.stats()["by_route"]["GET /v1/predictions/{id}"] == len(statuses)


def test_flagged_prompt_fails_with_e005(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.flag_word = "forbidden"
    p = client.models.predictions.create(model="google/veo-3-fast", input={"prompt": "A FORBIDDEN door"})
    p.wait()
    assert p.status == "failed" and p.output is None
    assert p.error == E005
    with pytest.raises(ModelError) as err:
        client.run("openai/sora-2", input={"prompt": "the Forbidden city"})
    assert str(err.value) == E005


def test_unreadable_image_fails_the_prediction(client: replicate.Client, tmp_path: Path) -> None:
    bogus = tmp_path / "not_an_image.jpg"
    bogus.write_bytes(b"plain text, not a JPEG")
    p = client.models.predictions.create(model="openai/sora-2",
                                         input={"prompt": "broken frame", "input_reference": bogus})
    p.wait()
    assert p.status == "failed" and p.output is None
    assert "not a readable image" in p.error


def test_cancel(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.latency = 5
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "cancel me"})
    p.cancel()
    assert p.status == "canceled"
    assert client.predictions.get(p.id).status == "canceled"
    assert client.predictions.cancel(p.id).status == "canceled"  # cancelling again is harmless
    assert httpx.get(f"{server.base_url}/v1/outputs/{p.id}.mp4").status_code == 404
    assert record(server, p.id)["status"] == "canceled"


def test_truncated_download_is_detectably_short(server: FakeReplicate, client: replicate.Client,
                                                tmp_path: Path) -> None:
    from s9.errors import GenerationError
    from s9.video import probe as s9_probe

    url = client.run("openai/sora-2", input={"prompt": "truncate"})
    server.config.truncate_downloads = 1
    short = httpx.get(url)
    full = httpx.get(url)
    # Default "short" mode: a clean HTTP response whose Content-Length matches the half sent.
    assert short.status_code == 200 and len(short.content) == len(full.content) // 2
    assert int(short.headers["content-length"]) == len(short.content)
    assert probe(full.content, tmp_path, "full.mp4")["frames"] == 4 * 24
    # Only checking the file catches it: PyAV either fails to open it or finds frames missing.
    try:
        info = probe(short.content, tmp_path, "short.mp4")
    except (av.FFmpegError, IndexError):
        pass
    else:
        assert info["frames"] < 4 * 24
    (tmp_path / "short.mp4").write_bytes(short.content)
    with pytest.raises(GenerationError, match="truncated|not a readable|corrupt"):
        s9_probe(tmp_path / "short.mp4")

    # "abort" mode promises the full length and hangs up: the HTTP layer itself raises.
    server.config.update({"truncate_downloads": 1, "truncate_mode": "abort"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert httpx.get(url).content == full.content


# -- models: schemas, gone models, new models ----------------------------------------------------


def test_model_endpoint_serves_each_schema_with_enums_behind_refs(client: replicate.Client) -> None:
    from s9.models.schema import Schema

    model = client.models.get("google/veo-3.1-fast")  # the client's own Model/Version classes parse it
    openapi = model.latest_version.openapi_schema
    props = openapi["components"]["schemas"]["Input"]["properties"]
    assert props["aspect_ratio"]["allOf"] == [{"$ref": "#/components/schemas/aspect_ratio"}]
    assert openapi["components"]["schemas"]["aspect_ratio"]["enum"] == ["16:9", "9:16", "1:1"]
    assert {"image", "last_frame", "negative_prompt", "seed"} <= set(props)
    schema = Schema("google/veo-3.1-fast", "today", "live", openapi)
    assert schema.enum("duration") == [4, 6, 8] and schema.required == ("prompt",)
    for name in ("openai/sora-2", "google/veo-3-fast", "google/veo-3.1", "kwaivgi/kling-v2.1", "minimax/hailuo-02",
                 "wan-video/wan-2.5-i2v"):
        assert client.models.get(name).latest_version.openapi_schema["components"]["schemas"]["Input"]


def test_gone_models_and_schema_patches(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.update({"gone_models": {"openai/sora-2": 410, "google/veo-3-fast": 404}})
    for name, status in (("openai/sora-2", 410), ("google/veo-3-fast", 404)):
        with pytest.raises(ReplicateError) as err:
            client.models.get(name)
        assert err.value.status == status
        with pytest.raises(ReplicateError) as err:
            client.models.predictions.create(model=name, input={"prompt": "x"})
        assert err.value.status == status
    assert "deprecated" in httpx.get(f"{server.base_url}/v1/models/openai/sora-2", headers=AUTH).json()["detail"]
    with pytest.raises(ValueError, match="404 or 410"):
        server.config.update({"gone_models": {"openai/sora-2": 500}})
    # A patched schema is served and enforced alike.
    server.config.schema_patches = {"google/veo-3.1-fast": {"aspect_ratio": {"choices": ["16:9"]}, "seed": None}}
    props = client.models.get("google/veo-3.1-fast").latest_version.openapi_schema["components"]["schemas"]
    assert props["aspect_ratio"]["enum"] == ["16:9"] and "seed" not in props["Input"]["properties"]
    for bad in ({"aspect_ratio": "1:1"}, {"seed": 3}):
        with pytest.raises(ReplicateError) as err:
            client.models.predictions.create(model="google/veo-3.1-fast", input={"prompt": "x", **bad})
        assert err.value.status == 422


@pytest.mark.parametrize(
    ("model", "inp", "field"),
    [
        ("kwaivgi/kling-v2.1", {"prompt": "x"}, "start_image"),
        ("kwaivgi/kling-v2.1", {"prompt": "x", "start_image": "https://x/a.jpg", "end_image": "https://x/b.jpg"},
         "end_image"),
        ("kwaivgi/kling-v2.1", {"prompt": "x", "start_image": "https://x/a.jpg", "duration": 6}, "duration"),
        ("minimax/hailuo-02", {"prompt": "x", "duration": 10}, "duration"),
        ("minimax/hailuo-02", {"prompt": "x", "resolution": "720p"}, "resolution"),
        ("wan-video/wan-2.5-i2v", {"prompt": "x"}, "image"),
        ("wan-video/wan-2.5-i2v", {"prompt": "x", "image": "https://x/a.jpg", "seed": -1}, "seed"),
        ("google/veo-3.1", {"prompt": "x", "image": "https://x/a.jpg", "reference_images": ["https://x/r.jpg"]},
         "reference_images"),
        ("google/veo-3-fast", {"prompt": "x", "last_frame": "https://x/b.jpg"}, "last_frame"),
    ],
)
def test_new_models_cross_field_rules_are_422(client: replicate.Client, model: str, inp: dict, field: str) -> None:
    with pytest.raises(ReplicateError) as err:
        client.models.predictions.create(model=model, input=inp)
    assert err.value.status == 422 and field in err.value.detail


def test_image_shaped_models_follow_the_first_frame(server: FakeReplicate, client: replicate.Client,
                                                    tmp_path: Path) -> None:
    tall = tmp_path / "tall.jpg"
    Image.new("RGB", (360, 640), (10, 200, 90)).save(tall, quality=90)
    upload = client.files.create(tall)
    p = client.models.predictions.create(model="minimax/hailuo-02", wait=30, input={
        "prompt": "tall", "first_frame_image": upload.urls["get"], "last_frame_image": upload.urls["get"],
        "duration": 6, "resolution": "768p"})
    assert p.status == "succeeded"
    info = probe(httpx.get(p.output).content, tmp_path)
    assert (info["width"], info["height"], info["audio"]) == (720, 1280, False)
    assert info["duration"] == pytest.approx(6, abs=0.1)
    assert record(server, p.id)["render"]["end_frame"] == "file"


# -- deadlines, listing filters, retention ---------------------------------------------------------


def test_cancel_after_aborts_before_start_and_cancels_while_running(server: FakeReplicate) -> None:
    url = f"{server.base_url}/v1/models/openai/sora-2/predictions"
    server.config.latency = 4.0  # starts after 2 s
    early = httpx.post(url, headers={**AUTH, "Cancel-After": "1s"}, json={"input": {"prompt": "early"}}).json()
    late = httpx.post(url, headers={**AUTH, "Cancel-After": "3s"}, json={"input": {"prompt": "late"}}).json()
    fast = httpx.post(url, headers={**AUTH, "Cancel-After": "1m"}, json={"input": {"prompt": "ok"}}).json()
    assert early["deadline"] and early["status"] == "starting"
    time.sleep(4.3)
    status = {name: httpx.get(f"{server.base_url}/v1/predictions/{p['id']}", headers=AUTH).json()
              for name, p in (("early", early), ("late", late), ("fast", fast))}
    assert status["early"]["status"] == "aborted" and status["early"]["started_at"] is None
    assert status["late"]["status"] == "canceled" and status["late"]["started_at"] is not None
    deadline = time.monotonic() + 30  # its render may still be running after the latency
    while status["fast"]["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.1)
        status["fast"] = httpx.get(f"{server.base_url}/v1/predictions/{fast['id']}", headers=AUTH).json()
    assert status["fast"]["status"] == "succeeded"
    assert status["early"]["completed_at"] == status["early"]["deadline"]
    assert record(server, early["id"])["cancel_after"] == "1s"
    r = httpx.post(url, headers={**AUTH, "Cancel-After": "soon"}, json={"input": {"prompt": "x"}})
    assert r.status_code == 400 and "Cancel-After" in r.json()["detail"]


def test_listing_filters_by_created_after_across_pages(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.list_page_size = 2
    before = client.models.predictions.create(model="openai/sora-2", input={"prompt": "before"})
    time.sleep(0.05)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    after = [client.models.predictions.create(model="openai/sora-2", input={"prompt": f"after {i}"})
             for i in range(3)]
    first = client.predictions.list(f"/v1/predictions?created_after={since}")
    assert [p.id for p in first] == [after[2].id, after[1].id] and "created_after=" in first.next
    second = client.predictions.list(first.next)
    assert [p.id for p in second] == [after[0].id] and second.next is None
    older = client.predictions.list(f"/v1/predictions?created_before={since}")
    assert before.id in [p.id for p in older] and not {p.id for p in after} & {p.id for p in older}
    bad = httpx.get(f"{server.base_url}/v1/predictions?created_after=yesterday", headers=AUTH)
    assert bad.status_code == 400
    for p in (before, *after):
        p.cancel()


def test_data_is_removed_after_the_retention(server: FakeReplicate, client: replicate.Client) -> None:
    server.config.output_ttl = 0.3
    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "fleeting"}, wait=30)
    assert p.status == "succeeded" and httpx.get(p.output).status_code == 200
    time.sleep(0.4)
    gone = httpx.get(f"{server.base_url}/v1/predictions/{p.id}", headers=AUTH).json()
    assert (gone["data_removed"], gone["output"], gone["input"]) == (True, None, {})
    assert httpx.get(p.output).status_code == 404


# -- https: FileOutput -----------------------------------------------------------------------------


def test_https_gives_file_output(tls: dict[str, Path], jpeg: Path, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    with FakeReplicate(config=FakeConfig(latency=LATENCY), certfile=tls["cert"], keyfile=tls["key"]) as srv:
        assert srv.base_url.startswith("https://127.0.0.1:")
        # httpx (and so the client) trusts SSL_CERT_FILE when it builds its transport.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls["ca"]))
        monkeypatch.setenv("REPLICATE_BASE_URL", srv.base_url)  # honoured when base_url isn't passed
        client = replicate.Client(api_token="test-token")
        client.poll_interval = 0.05
        upload = client.files.create(jpeg)
        assert upload.urls["get"].startswith("https://")
        out = client.run("google/veo-3-fast",
                         input={"prompt": "tls", "image": upload.urls["get"], "duration": 4, "generate_audio": False})
        assert isinstance(out, FileOutput)
        assert out.url.startswith(f"{srv.base_url}/v1/outputs/")
        info = probe(out.read(), tmp_path)
        assert (info["width"], info["height"], info["audio"]) == (1280, 720, False)

        p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "tls poll"})
        p.wait()
        assert isinstance(p.output, str)  # predictions keep the raw URL...
        assert isinstance(transform_output(p.output, client), FileOutput)  # ...run() transforms it

        # Without SSL_CERT_FILE: give the client a transport that trusts the CA. Note that `verify=`
        # passed to replicate.Client does NOT work, because the client always supplies its own transport.
        monkeypatch.delenv("SSL_CERT_FILE")
        ctx = ssl.create_default_context(cafile=str(tls["ca"]))
        ok = replicate.Client(api_token="t", base_url=srv.base_url, transport=httpx.HTTPTransport(verify=ctx))
        assert ok.predictions.get(p.id).status == "succeeded"
        ignored = replicate.Client(api_token="t", base_url=srv.base_url, verify=ctx)
        with pytest.raises(httpx.ConnectError):
            ignored.predictions.get(p.id)


# -- /_fake introspection and config ---------------------------------------------------------------


def test_fake_endpoints(server: FakeReplicate, client: replicate.Client) -> None:
    base = server.base_url
    assert httpx.post(f"{base}/_fake/reset").json() == {"ok": True}
    assert httpx.get(f"{base}/_fake/stats").json() == {"total": 0, "by_route": {}, "throttled": 0}
    r = httpx.post(f"{base}/_fake/config", json={"latency": 0, "flag_word": "nope", "expected_token": "s3"})
    assert r.status_code == 200 and r.json()["latency"] == 0 and r.json()["expected_token"] == "***"
    assert server.config.flag_word == "nope" and server.config.expected_token == "s3"
    assert httpx.get(f"{base}/_fake/config").json()["flag_word"] == "nope"
    assert httpx.post(f"{base}/_fake/config", json={"nonsense": 1}).status_code == 400
    assert httpx.post(f"{base}/_fake/config", json={"latency": "slow"}).status_code == 400
    assert httpx.post(f"{base}/_fake/config", json={"create_then_error": 1.5}).status_code == 400
    assert httpx.post(f"{base}/_fake/config", json={"create_then_error": 0}).json()["create_then_error"] == 0
    httpx.post(f"{base}/_fake/config", json={"expected_token": None})

    p = client.models.predictions.create(model="openai/sora-2", input={"prompt": "introspect"}, wait=10)
    reqs = httpx.get(f"{base}/_fake/requests").json()
    assert [(r["method"], r["path"], r["status"]) for r in reqs] == [
        ("POST", "/v1/models/openai/sora-2/predictions", 201)
    ]
    assert all("authorization" not in str(r).lower() and "test-token" not in str(r) for r in reqs)
    preds = httpx.get(f"{base}/_fake/predictions").json()
    assert any(x["id"] == p.id and x["status"] == "succeeded" for x in preds)
    assert httpx.get(f"{base}/_fake/stats").json()["total"] == 1


def test_module_imports_without_rendering_or_model_code() -> None:
    # Independent of s9's specs/backends, and importable even where s9.video can't be.
    code = (
        "import sys, s9; before = set(sys.modules); import s9.fake.server; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('s9.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = ["s9.fake", *(f"s9.fake.{m}" for m in ("control", "faults", "render", "routes", "schemas", "server",
                                                   "state"))]
    assert out.strip() == str(sorted(modules))


def test_a_real_run_does_not_load_the_fake_server() -> None:
    # `s9` mounts `fake-replicate`, but only the command's declaration is imported, never the server.
    code = "import sys, s9.cli; print(sorted(m for m in sys.modules if m.startswith('s9.fake')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['s9.fake', 's9.fake.cli']"


def test_serve_forever_in_own_thread(tmp_path: Path) -> None:
    srv = FakeReplicate(workdir=tmp_path / "wd")
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    try:
        assert httpx.get(f"{srv.base_url}/_fake/stats").status_code == 200
    finally:
        srv.stop()  # the GET above proves the loop is running
        t.join(timeout=5)
    assert not t.is_alive()
    assert (tmp_path / "wd").is_dir()  # a workdir we were given is left alone


def test_cli_prints_base_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    assert fake_replicate_command.name == "fake-replicate"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s9.fake", "--port", "0", "--latency", "0", "--flag-word", "bad",
         "--create-then-error", "2", "--list-page-size", "7", "--workdir", str(tmp_path / "wd"), "-v",
         "--gone-model", "openai/sora-2=410", "--gone-model", "google/veo-3-fast"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("REPLICATE_BASE_URL=http://127.0.0.1:")
        base = line.split("=", 1)[1]
        config = httpx.get(f"{base}/_fake/config").json()
        assert (config["flag_word"], config["create_then_error"], config["list_page_size"]) == ("bad", 2, 7)
        assert config["gone_models"] == {"openai/sora-2": 410, "google/veo-3-fast": 404}
        r = httpx.get(f"{base}/v1/predictions/nope", headers={"Authorization": "Bearer sekrit-token"})
        assert r.status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        stderr = proc.stderr.read()
        assert "/v1/predictions/nope" in stderr and "sekrit" not in stderr  # request line, never headers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
