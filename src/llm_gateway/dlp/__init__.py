"""Data loss prevention: detectors, validators, NER, actions, anonymiser, vault."""
