"""Multi-query associative recall (Arora et al. 2023, "Zoology"): which sequence models can
look a value up by its key, as the number of key-value pairs grows."""
