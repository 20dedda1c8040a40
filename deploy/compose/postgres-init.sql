-- Runs once, when the compose PostgreSQL volume is created (docker-entrypoint-initdb.d).
-- One login role and one database per service, each owning its own: the same layout as the
-- CloudNativePG Cluster in deploy/k8s. The passwords are for a developer's machine only.
CREATE ROLE dispatch LOGIN PASSWORD 'dispatch';
CREATE ROLE attendance LOGIN PASSWORD 'attendance';
CREATE ROLE assessment LOGIN PASSWORD 'assessment';
CREATE ROLE projections LOGIN PASSWORD 'projections';
-- Read-only role for `zhucun verify` and `zhucun status` (PostgreSQL 14+).
CREATE ROLE auditor LOGIN PASSWORD 'auditor' IN ROLE pg_read_all_data;

CREATE DATABASE dispatch OWNER dispatch;
CREATE DATABASE attendance OWNER attendance;
CREATE DATABASE assessment OWNER assessment;
CREATE DATABASE projections OWNER projections;
