#!/bin/sh
# First start of the example PostgreSQL only (docker-entrypoint-initdb.d): one role and one
# database per service, each role's password from postgres-secrets (DB_PASSWORD_<NAME>).
set -eu
for name in gateway auth member room inventory notification; do
	eval "password=\${DB_PASSWORD_$(echo "$name" | tr '[:lower:]' '[:upper:]')}"
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
		-v name="$name" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
done
