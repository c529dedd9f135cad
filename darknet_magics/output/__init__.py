"""Output parsing: darknet's text in, events, problems, verdicts and dataframes out (pure)."""
