import { pgCode } from '../errors.js'

export const isUniqueViolation = (err: unknown): boolean => pgCode(err) === '23505'
