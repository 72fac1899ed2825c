"""What happens to one seed: templates, the teacher client, parsing, the step runner. No Ray here."""
