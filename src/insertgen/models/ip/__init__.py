"""The Insertion Process (arXiv 2606.02133): one-token-at-a-time insertion with a learned order."""
