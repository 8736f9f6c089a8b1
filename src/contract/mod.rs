//! The written contract. (stub, replaced by the contract helper)
