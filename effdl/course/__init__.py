"""Tools for the course itself: the student version of an instructor notebook (`student`)."""
