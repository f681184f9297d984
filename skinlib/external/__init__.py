"""External validation: the overlap guard, the evaluation on another dataset, what it can say."""
