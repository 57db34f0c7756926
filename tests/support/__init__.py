"""Programs and helpers the tests run or import: builds killed or measured in a process of
their own, damaged copies of a release, what a built dataset reads back."""
