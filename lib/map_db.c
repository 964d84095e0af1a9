/* map_db.c: placeholder until implemented. */
