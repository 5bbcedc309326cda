"""The engine layer: training, evaluation, order analysis, presets and loading runs. It imports the core,
nn, models and tasks layers, never the applications above it."""
