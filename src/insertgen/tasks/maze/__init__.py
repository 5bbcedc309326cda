"""Maze path planning: the maze generators, the path solver and the task."""
