"""The web page served by a running analyzer: today's visitors, and each camera's set-up (docs/WEB.md)."""
