"""Command-line tools (``pano-perception ...``)."""
