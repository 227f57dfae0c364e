#!/bin/sh
# Run once by the postgres image, when its volume is first initialised
# (/docker-entrypoint-initdb.d): one database per service, owned by a role of the same name
# with its own password (DB_PASSWORD_<NAME>, from the generated .env), closed to the others.
# No service can read another's database: each URL names its own role.
set -eu

for service in ${SERVICE_DATABASES:?the services that own a database}; do
	var="DB_PASSWORD_$(printf '%s' "$service" | tr '[:lower:]-' '[:upper:]_')"
	eval "password=\${$var:?$var is not set: run uv run stack compose-env}"
	# psql variables (:"name", :'password') quote the identifier and the literal safely.
	psql -v ON_ERROR_STOP=1 --quiet --username "$POSTGRES_USER" --dbname postgres \
		-v name="$service" -v password="$password" <<-'SQL'
		CREATE ROLE :"name" LOGIN PASSWORD :'password';
		CREATE DATABASE :"name" OWNER :"name";
		REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
	SQL
	echo "postgres-init: database and role $service created"
done
