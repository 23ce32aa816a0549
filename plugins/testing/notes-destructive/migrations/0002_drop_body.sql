ALTER TABLE notes DROP/**/body;
