"""The bad-input corpus: malformed readers' inputs, score shards and label deliveries (see ``corpus.py``)."""
