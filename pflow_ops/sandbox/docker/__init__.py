"""The sandbox's docker runtime: the same services as containers of a Compose project."""
