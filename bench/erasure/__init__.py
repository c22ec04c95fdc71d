"""Privacy erasure: generated private facts, injection by fine-tuning, erasure methods, metrics."""
