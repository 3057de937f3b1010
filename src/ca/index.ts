export {
  type AuthorityInfo,
  type AuthorityKind,
  type AuthoritySlot,
  CertificateAuthority,
  type CertificateAuthorityOptions,
  CRL_VALIDITY_MS,
  DEFAULT_INTERMEDIATE_TTL_MS,
  DEFAULT_ROOT_TTL_MS,
  type ImportOptions,
  type InitializeOptions,
  type IssuedCertificate,
  type PeerCertificateCheck,
  REVOCATION_REASONS,
  type RevocationReason,
  readTrustBundle,
} from './authority.ts';
export { type CheckedCsr, type CsrPolicy, checkCsr, DEFAULT_CSR_POLICY, MAX_CSR_BYTES } from './csr.ts';
export { CA_KEY_ENV, CaSealingKey, createCaKeyFile, loadCaSealingKey } from './lib/seal.ts';
export { CA_KEY_ALGORITHMS, type CaKeyAlgorithm } from './lib/x509.ts';
export { createCertificateRequest } from './request.ts';
export { caApiRoutes } from './routes.ts';
export {
  BACKDATE_MS,
  DEFAULT_DEVICE_TTL_MS,
  DEFAULT_WORKLOAD_TTL_MS,
  type DeviceCertificateParams,
  type LeafKind,
  type LeafSigner,
  MAX_LEAF_TTL_MS,
  type SignedLeaf,
  signDeviceCertificate,
  signWorkloadCertificate,
  type WorkloadCertificateParams,
} from './sign.ts';
export {
  checkWorkloadSpiffeId,
  deviceSpiffeId,
  isTrustDomain,
  parseSpiffeId,
  type SpiffeId,
} from './spiffe.ts';
