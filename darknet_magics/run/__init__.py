"""Process running: the pty runner with its watchdog."""
