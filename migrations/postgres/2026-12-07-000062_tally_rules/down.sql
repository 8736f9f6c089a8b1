DROP TABLE tally_rules;
