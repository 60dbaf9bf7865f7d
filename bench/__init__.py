"""`make bench`: Ownstory's figures, each printed against a limit measured in the same run."""
