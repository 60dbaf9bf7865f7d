"""The platform's stores: the data map, and counting, reading and purging a person's data in them."""
