-- A licence signer's PDF seal certificate (docs/DESIGN.md, "PDF seals"), kept in the register
-- beside the signer's: every instance lists the same seals in the trust list, and a seal whose
-- files were lost is never silently made again with another key (a PDF re-rendered later would
-- differ). Null until the seal is made; set once.
ALTER TABLE signers ADD COLUMN seal_certificate TEXT;
