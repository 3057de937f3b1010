import { customFetch } from 'jose';

/** JWKS fetches made by this process, by outcome; read by the identity metrics. */
export const jwksFetches = { ok: 0, error: 0 };

/**
 * The fetch jose uses for remote key sets, counting each fetch: a sudden rise means an
 * IdP rotating keys or tokens arriving with unknown `kid`s.
 */
export const countingJwksFetch = {
  [customFetch]: async (...args: Parameters<typeof fetch>): Promise<Response> => {
    try {
      const response = await fetch(...args);
      if (response.ok) jwksFetches.ok++;
      else jwksFetches.error++;
      return response;
    } catch (error) {
      jwksFetches.error++;
      throw error;
    }
  },
};
