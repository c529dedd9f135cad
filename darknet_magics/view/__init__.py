"""The view stage: charts and pictures of what the other stages produced (plotly specs, PNGs in run folders)."""
