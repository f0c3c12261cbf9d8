"""mmwsss metrics register here."""
