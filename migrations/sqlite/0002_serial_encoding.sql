-- Agent SVID serials in the one encoding (sworn_identity::Serial): lower-case hex of the
-- integer's magnitude, without the DER sign octet. Before, they were stored as hex of the
-- DER INTEGER content, which starts with one 00 octet exactly when the magnitude's top bit
-- is set (DER integers are minimal, so there is never more than one). Dropping that octet
-- keeps every value; no row is removed.

UPDATE agents SET serial = substr(serial, 3)
 WHERE length(serial) > 2 AND substr(serial, 1, 2) = '00';

UPDATE agents SET prev_serial = substr(prev_serial, 3)
 WHERE length(prev_serial) > 2 AND substr(prev_serial, 1, 2) = '00';
