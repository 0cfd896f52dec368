"""Each page's actions: a module per page, each with `register(app, context)`."""
