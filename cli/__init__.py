"""pbft command-line application."""
