"""Task ``sequences``: a user's own sequences read from JSONL files (:mod:`.task`)."""
