/* map_text.c: placeholder until implemented. */
