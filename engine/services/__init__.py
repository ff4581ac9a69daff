"""What the CLI and the studio call: editing with styles from the library, managing styles, and
training jobs in the background. The layer above training, fusion and the library."""
