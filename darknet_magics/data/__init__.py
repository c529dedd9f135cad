"""Data in: staging onto local disk, dataset formats to darknet labels, obj.data, cfg, checks, anchors, weights."""
