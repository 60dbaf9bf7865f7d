"""Demo Social: a small OAuth 2 provider and a seeded platform store for trying Ownstory offline."""
