"""Star-graph path finding: the graph generators, the solver and the task."""
