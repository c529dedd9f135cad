"""Views: the live chart, charts of runs and datasets, the HTML report."""
