-- Signing entities (OpenPGP fingerprints) of an image's signatures, as a JSON array.
ALTER TABLE images ADD COLUMN fingerprints TEXT;
