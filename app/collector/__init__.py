"""The collector: sources of kernel state, the scrape that joins them, the daemon loop."""
