"""Seeds: readers of every source format (`read`), and loading a workflow's seed set with exact
dedup, near-duplicate and benchmark screening and the limit (`load`)."""
