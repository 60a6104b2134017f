#!/bin/bash
# Initialises PGDATA on first start, then runs PostgreSQL in the foreground.
#   POSTGRES_PASSWORD_FILE  the superuser's password (a mounted Secret key)          required
#   POSTGRES_DATABASES      "database:secret-dir ..."; each secret-dir holds `username` and
#                           `password` (a basic-auth Secret, as CloudNativePG reads them); the
#                           role is created or its password updated, the database created for it
# Roles and databases are reconciled on every start, so a rotated Secret takes effect on restart.
set -euo pipefail
: "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE}"
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "postgres: initialising $PGDATA"
  initdb --username=postgres --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/var/run/postgresql'"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
for entry in ${POSTGRES_DATABASES:-}; do
  db=${entry%%:*} dir=${entry#*:}
  user=$(<"$dir/username") password=$(<"$dir/password")
  psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres \
    -v user="$user" -v password="$password" -v db="$db" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  echo "postgres: database $db for role $user"
done
pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
exec postgres -D "$PGDATA"
