"""/forget: leaving without an account, after proving control of a network account or an email address."""
