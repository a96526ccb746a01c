-- One database and one login role per service: each service owns its data and
-- cannot connect to the others' databases.
--
-- LOCAL DEVELOPMENT DEFAULTS: the passwords equal the role names. Never use
-- them anywhere but on a developer's machine or in CI.
--
-- Used by docker-compose.yml (mounted into /docker-entrypoint-initdb.d).
CREATE ROLE orders    LOGIN PASSWORD 'orders';
CREATE ROLE invoicing LOGIN PASSWORD 'invoicing';
CREATE ROLE shipping  LOGIN PASSWORD 'shipping';

CREATE DATABASE orders    OWNER orders;
CREATE DATABASE invoicing OWNER invoicing;
CREATE DATABASE shipping  OWNER shipping;

REVOKE CONNECT, TEMPORARY ON DATABASE orders    FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE invoicing FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE shipping  FROM PUBLIC;
