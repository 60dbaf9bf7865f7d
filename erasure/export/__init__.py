"""Export: everything held about a person, as one streamed JSON document."""
