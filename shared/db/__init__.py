"""PostgreSQL access: table definitions, engine construction, migrations."""
