"""The core layer: errors, file I/O, vocabularies, batches, checkpoints, EMA, distributed set-up, threads,
options parsing, the run-directory format and sampling options. It imports nothing else of insertgen."""
