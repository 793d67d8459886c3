-- Runs once when the postgres container initialises its volume (docker-compose.yml).
CREATE DATABASE engagement_test OWNER engagement;
