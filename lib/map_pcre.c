/* map_pcre.c: placeholder until implemented. */
