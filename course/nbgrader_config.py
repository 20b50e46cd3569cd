"""nbgrader configuration for a course directory of effdl lessons.

Run nbgrader from the folder that holds this file: `nbgrader generate_assignment LESSON`,
`nbgrader autograde LESSON`, `nbgrader generate_feedback LESSON`, with each lesson's notebook in
`source/LESSON/LESSON.ipynb` (`effdl course init DIR` lays a folder out so).
"""

c = get_config()  # noqa: F821 (nbgrader defines get_config when it loads this file)

# nbgrader's default of 30 s per cell stops the lessons' training cells; nbval allows 300 s.
c.Execute.timeout = 300
