"""Search strategies, trainer and history store (see the search issue)."""
