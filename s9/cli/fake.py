"""`s9 fake-replicate`: the shipped Replicate-compatible server, mounted as a subcommand."""

from ..fake.cli import fake_replicate_command

__all__ = ["fake_replicate_command"]
