"""Pictures of a corpus for people: contact sheets, event-rate plots and sweep videos of each scene."""
